# The two commands of the README.
.PHONY: run test crd
run: ## Run the operator: against KUBECONFIG + SCM_ENDPOINT if both are set, else a local control plane + scm-sim demo
	bash scripts/run.sh
test: ## Format and lint checks, unit tests, simulator tests and the end-to-end suite on a real API server
	bash scripts/test.sh
crd: ## Regenerate crds/certificatepush.yaml
	cargo run --quiet -- crd > crds/certificatepush.yaml
