"""`make simulate`: real traffic replayed through models of Knative's KPA, Cloud Run and the always-on design."""
