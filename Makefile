# The two commands of the README.
.PHONY: run test test-versions crd image
run: ## Run the operator: a local control plane + scm-sim demo; CLUSTER=1 (with SCM_REGION) runs it against your kubeconfig's cluster
	CLUSTER=$(CLUSTER) bash scripts/run.sh
test: ## Format and lint checks, unit tests, simulator tests and the end-to-end suite on a real API server
	bash scripts/test.sh
test-versions: ## The end-to-end suite on the oldest and newest supported Kubernetes (1.28 and 1.37; not part of make test)
	bash scripts/test-versions.sh
crd: ## Regenerate crds/ (one file per CRD)
	cargo run --quiet -- crd --output-dir crds
image: ## Build the container image IMAGE (default certpush-operator:<version>) for PLATFORM (default linux/amd64) with docker, podman or buildah
	PLATFORM=$(PLATFORM) bash scripts/image.sh $(IMAGE)
