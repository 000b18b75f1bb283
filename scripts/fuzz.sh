#!/usr/bin/env bash
echo "scripts/fuzz.sh: not written yet"
