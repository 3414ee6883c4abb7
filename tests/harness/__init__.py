"""The one test harness: a mitmdump launcher and a scripted upstream, used by the e2e tests and by bench/."""
