#!/usr/bin/env bash
# Scheduled living-review run: live PubMed searches, a dated report, a loud failure.
#
# Runs `reviewkit run --live` into an output root that keeps one dated folder per
# run (default: reports/living/ in the project), so each run is compared with the
# previous one. Exit status is reviewkit's: 0 done; 2 a notebook failed (the
# message names the notebook, the cell and the error, e.g. a search that kept
# failing); 3 the report was written but a search count fell since the last run.
# Any non-zero exit makes cron mail the output (set MAILTO) and fails a CI job.
#
# Credentials come from the environment, never from arguments or notebook
# parameters: NCBI_EMAIL (required by NCBI) and NCBI_API_KEY (optional, allows
# 10 requests/second). Cron starts with an almost empty environment, so they can
# be read from a file only you can read, named by REVIEWKIT_ENV_FILE:
#
#   # ~/.config/reviewkit/ncbi.env   (chmod 600)
#   NCBI_EMAIL=you@example.org
#   NCBI_API_KEY=0123456789abcdef
#
#   # crontab -e: every Monday at 06:00
#   MAILTO=you@example.org
#   0 6 * * 1  REVIEWKIT_ENV_FILE=$HOME/.config/reviewkit/ncbi.env /path/to/reviewkit/scripts/living-review.sh >> /path/to/reviewkit/reports/living.log 2>&1
#
# Other settings: REVIEWKIT_PROJECT (the review's folder; default: the folder
# above this script), REVIEWKIT_REPORTS (output root), REVIEWKIT_BIN (the
# reviewkit executable; default .venv/bin/reviewkit). Extra arguments go to
# `reviewkit run`, but only these, checked here first (a scheduled job passes on
# nothing it did not expect): --max-count-drop N, -p|--parameter NAME VALUE
# (NAME a lower-case parameter name, VALUE one line of printable text), -v, -q.
# e.g. --max-count-drop 2, -p screening mine.
set -euo pipefail

refuse() {
  echo "living-review: error: $1; accepted: --max-count-drop N, -p NAME VALUE, -v, -q" >&2
  exit 2
}
forwarded=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --max-count-drop)
      [ "$#" -ge 2 ] && [[ "$2" =~ ^[0-9]{1,9}$ ]] || refuse "--max-count-drop needs a number of records"
      forwarded+=("$1" "$2"); shift 2 ;;
    -p|--parameter)
      [ "$#" -ge 3 ] || refuse "$1 needs a NAME and a VALUE"
      [[ "$2" =~ ^[a-z_][a-z0-9_]{0,63}$ ]] || refuse "parameter names are lower-case letters, digits and _"
      [[ "$3" =~ ^[[:print:]]{0,1000}$ ]] || refuse "a parameter value is one line of printable text"
      forwarded+=("-p" "$2" "$3"); shift 3 ;;
    -v|-vv|-q)
      forwarded+=("$1"); shift ;;
    *)
      refuse "argument $(printf '%q' "${1:0:40}") is not accepted" ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project="${REVIEWKIT_PROJECT:-$here}"
reports="${REVIEWKIT_REPORTS:-$project/reports/living}"
reviewkit="${REVIEWKIT_BIN:-$here/.venv/bin/reviewkit}"

if [ -n "${REVIEWKIT_ENV_FILE:-}" ]; then
  if [ ! -r "$REVIEWKIT_ENV_FILE" ]; then
    echo "living-review: error: cannot read REVIEWKIT_ENV_FILE ($REVIEWKIT_ENV_FILE)" >&2
    exit 2
  fi
  set -a
  # shellcheck disable=SC1090
  . "$REVIEWKIT_ENV_FILE"
  set +a
fi
if [ -z "${NCBI_EMAIL:-}" ]; then
  echo "living-review: error: NCBI_EMAIL is not set; NCBI requires a contact e-mail for E-utilities" \
       "(export it, or name a file holding it in REVIEWKIT_ENV_FILE)" >&2
  exit 2
fi
if [ ! -x "$reviewkit" ]; then
  echo "living-review: error: $reviewkit not found; install the project first (make report) or set REVIEWKIT_BIN" >&2
  exit 2
fi

echo "living-review: $(date -u +%Y-%m-%dT%H:%M:%SZ) live run into $reports"
status=0
"$reviewkit" run --live --no-progress --project "$project" --output "$reports" ${forwarded[@]+"${forwarded[@]}"} || status=$?
if [ "$status" -ne 0 ]; then
  echo "living-review: error: reviewkit run exited with status $status; the reason is printed above" >&2
fi
exit "$status"
