#!/usr/bin/env bash
echo "scripts/cuda-check.sh: not written yet"
