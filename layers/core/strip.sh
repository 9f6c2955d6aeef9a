#!/bin/sh
# Remove what the runtime never imports: test suites, caches, type stubs, build tooling,
# onnxruntime's offline tools (quantization, transformers optimizers) and numpy's f2py.
set -eu
dir="$1"
find "$dir" -depth -type d \( -name __pycache__ -o -name tests -o -name testing -o -name _pyinstaller \) -exec rm -rf {} +
find "$dir" -type f \( -name '*.pyi' -o -name '*.pyc' \) -delete
rm -rf "$dir/bin" \
  "$dir/numpy/f2py" "$dir/numpy/_core/include" "$dir/numpy/doc" \
  "$dir/onnxruntime/tools" "$dir/onnxruntime/transformers" "$dir/onnxruntime/quantization" \
  "$dir/onnxruntime/datasets" "$dir/onnxruntime/backend"
