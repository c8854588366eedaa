# The two commands of the README.
.PHONY: run test crd image
run: ## Run the operator: against the configured cluster (KUBECONFIG or ~/.kube/config), else a local control plane + scm-sim demo
	bash scripts/run.sh
test: ## Format and lint checks, unit tests, simulator tests and the end-to-end suite on a real API server
	bash scripts/test.sh
crd: ## Regenerate crds/certificatepush.yaml
	cargo run --quiet -- crd > crds/certificatepush.yaml
image: ## Build the container image IMAGE (default certpush-operator:<version>) with docker, podman or buildah
	bash scripts/image.sh $(IMAGE)
