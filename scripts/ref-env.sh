#!/usr/bin/env bash
echo "scripts/ref-env.sh: not written yet"
