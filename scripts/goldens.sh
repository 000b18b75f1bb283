#!/usr/bin/env bash
echo "scripts/goldens.sh: not written yet"
