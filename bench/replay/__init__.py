"""`make replay`: a short trace against `make up SCALING=knative`, observed against the KPA model of bench/sim."""
