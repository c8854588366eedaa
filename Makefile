# The two commands of the README.
.PHONY: run test crd image
run: ## Run the operator: a local control plane + scm-sim demo; CLUSTER=1 (with SCM_REGION) runs it against your kubeconfig's cluster
	CLUSTER=$(CLUSTER) bash scripts/run.sh
test: ## Format and lint checks, unit tests, simulator tests and the end-to-end suite on a real API server
	bash scripts/test.sh
crd: ## Regenerate crds/certificatepush.yaml
	cargo run --quiet -- crd > crds/certificatepush.yaml
image: ## Build the container image IMAGE (default certpush-operator:<version>) with docker, podman or buildah
	bash scripts/image.sh $(IMAGE)
