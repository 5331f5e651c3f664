#!/usr/bin/env bash
# Keep the notebooks output-free in git, and JupyterLab from writing outputs into them:
#
#   scripts/install-notebook-filter.sh PYTHON [JUPYTER_CONFIG_DIR]
#
# 1. nbstripout as the git filter that .gitattributes names: `git add` stages a notebook without
#    outputs, execution counts or the metadata a kernel adds. Cell ids are kept (--keep-id: the
#    notebooks' ids are stable names) and of language_info only "name", as committed.
# 2. The Jupyter server of PYTHON's environment (or JUPYTER_CONFIG_DIR) runs that same filter before
#    it saves a notebook the filter applies to (reviewkit.savehook), so a Run All leaves `git status`
#    clean: git reports a notebook whose size changed as modified even when the filter would undo it.
#
# PYTHON is the Python that has nbstripout and reviewkit (make passes .venv's). Outside a git
# checkout (an unpacked archive) there is nothing to install.
set -euo pipefail
python="${1:?usage: install-notebook-filter.sh PYTHON [JUPYTER_CONFIG_DIR]}"
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
config_dir="${2:-$("$python" -c 'import sys; print(sys.prefix)')/etc/jupyter}"
cd "$(dirname "$0")/.."
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "install-notebook-filter: not a git checkout; nothing to install"
  exit 0
fi
"$python" -m nbstripout --install --attributes .gitattributes
strip="\"$python\" -m nbstripout --keep-id"
git config filter.nbstripout.clean "$strip"
git config diff.ipynb.textconv "$strip -t"
git config filter.nbstripout.extrakeys "metadata.language_info.codemirror_mode metadata.language_info.file_extension \
metadata.language_info.mimetype metadata.language_info.nbconvert_exporter metadata.language_info.pygments_lexer \
metadata.language_info.version"
mkdir -p "$config_dir/jupyter_server_config.d"
printf '{"ContentsManager": {"pre_save_hook": "reviewkit.savehook.strip_as_git_stores"}}\n' \
  > "$config_dir/jupyter_server_config.d/reviewkit.json"
echo "install-notebook-filter: notebooks are saved and staged without outputs (nbstripout, $python)"
