"""The one test harness: a mitmdump launcher, a scripted upstream and HAProxy in front of replicas, used by the e2e tests and by bench/."""
