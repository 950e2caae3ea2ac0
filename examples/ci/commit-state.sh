#!/usr/bin/env bash
# Commit and push the state files given as arguments (examples/ci/environments.yml; copy to
# .github/commit-state.sh). Also after a failed apply: what it did create is recorded only
# in the state. GH_TOKEN is passed to git for this push alone (the checkout keeps none).
set -euo pipefail
auth="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$GH_TOKEN" | base64 -w0)"
export GIT_CONFIG_COUNT=1
export GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL}/.extraheader"
export GIT_CONFIG_VALUE_0="$auth"
git config user.name "provisioner"
git config user.email "provisioner@users.noreply.github.com"
git add -- "$@"
if git diff --cached --quiet; then
  echo "The state is unchanged."
  exit 0
fi
git commit -m "provisioner: update state ($*)"
# main may have moved (the other environment's job pushed its state): rebase and retry.
for attempt in 1 2 3 4 5; do
  if git pull --rebase origin main && git push origin HEAD:main; then
    exit 0
  fi
  git rebase --abort 2>/dev/null || true
  sleep $((attempt * 5))
done
echo "::error::Could not push $* to main: commit it from this run's logs before the next plan."
exit 1
