#!/usr/bin/env bash
# Writes deploy/k8s/components/servicemonitor/prometheusrule.yaml from
# deploy/observability/lossd.rules.yml, the file promtool tests. Run it after
# editing the rules; check_deploy.sh fails while the two differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out=k8s/components/servicemonitor/prometheusrule.yaml
{
    cat <<'HEAD'
# The alerting rules of deploy/observability/lossd.rules.yml for the
# Prometheus Operator; deploy/tests/validate.mjs checks that the groups are
# the same. Regenerate after editing the rules:
#   deploy/tests/sync_rules.sh
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: lossd
  labels:
    app.kubernetes.io/name: lossd
spec:
HEAD
    sed -n '/^groups:/,$p' observability/lossd.rules.yml | sed '/./s/^/  /'
} >"$out"
echo "wrote deploy/$out"
