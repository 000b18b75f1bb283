#!/usr/bin/env bash
echo "scripts/ptx.sh: not written yet"
