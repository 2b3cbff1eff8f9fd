#!/usr/bin/env bash
# Submits the data-preparation job to Dataflow. Build first: `make worker bin/prepare`
# (make prepare-dataflow does both). Settings come from the environment:
#   PROJECT, REGION, BUCKET      (required) GCP project, region and a GCS bucket for the run
#   RUN                          run name under gs://$BUCKET/runs/ (default: prepare-<date>)
#   LABELER                      groq (default) or rules
#   GENERATOR_URL, GENERATOR_MODEL  the OpenAI-compatible SFT endpoint (e.g. vLLM) and adapter
#   DRY_RUN=1                    build and validate the job offline, submit nothing
#   ARGS                         extra flags for bin/prepare (see README.md)
# Workers need GROQ_API_KEY / GENERATOR_API_KEY in their environment (see README.md,
# "Secrets on Dataflow"); they are never passed as flags.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${PROJECT:?set PROJECT to your GCP project id}"
: "${BUCKET:?set BUCKET to a GCS bucket name (no gs://)}"
REGION=${REGION:-us-central1}
RUN=${RUN:-prepare-$(date -u +%Y%m%d-%H%M%S)}
LABELER=${LABELER:-groq}
GENERATOR_MODEL=${GENERATOR_MODEL:-sft}

dry=()
if [[ "${DRY_RUN:-}" == 1 ]]; then
  dry=(--dry_run)
  GENERATOR_URL=${GENERATOR_URL:-http://dry-run.invalid/v1}
fi
: "${GENERATOR_URL:?set GENERATOR_URL to the OpenAI-compatible generator, e.g. http://vllm:8000/v1}"

exec bin/prepare \
  --runner=dataflow \
  --project="$PROJECT" --region="$REGION" \
  --staging_location="gs://$BUCKET/staging" --temp_location="gs://$BUCKET/tmp" \
  --worker_binary=bin/prepare-worker \
  --job_name="$(echo "$RUN" | tr '_' '-' | tr '[:upper:]' '[:lower:]')" \
  --output="gs://$BUCKET/runs/$RUN" \
  --labeler="$LABELER" \
  --generator_url="$GENERATOR_URL" --generator_model="$GENERATOR_MODEL" \
  "${dry[@]}" ${ARGS:-}
