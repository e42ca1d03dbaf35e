#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into the hub's database and model store.
#
#   scripts/restore.sh BACKUP_DIR --yes
#
# Same settings as backup.sh (DATABASE_URL, POLLEN_MODEL_STORE_*; each also as NAME_FILE).
# The database objects in the dump REPLACE those in DATABASE_URL (pg_restore --clean), in
# one transaction: a failure changes nothing. Objects are uploaded to the model store when
# missing or different; nothing is deleted there. Stop the hub (web and worker) first, then
# run the migrate job of the release you restore into (docs/operations.md, "Restore").
set -euo pipefail

usage() { echo "usage: $0 BACKUP_DIR --yes" >&2; exit 2; }
[[ $# -eq 2 && "$2" == "--yes" ]] || usage
src="$1"
[[ -f "$src/manifest.json" && -f "$src/db.dump" ]] || {
    echo "restore.sh: $src is not a complete backup (no manifest.json or db.dump)" >&2; exit 2; }

read_setting() {
    local name="$1" file_var="${1}_FILE"
    if [[ -n "${!file_var:-}" ]]; then
        tr -d '\r\n' <"${!file_var}"
    else
        printf '%s' "${!name:-${2:-}}"
    fi
}

database_url="$(read_setting DATABASE_URL)"
[[ "$database_url" == postgres://* || "$database_url" == postgresql://* ]] || {
    echo "restore.sh: DATABASE_URL must be a postgres:// URL" >&2; exit 2; }

# Check every file against the manifest before touching anything.
export POLLEN_MODEL_STORE_KIND_RESOLVED="$(read_setting POLLEN_MODEL_STORE_KIND fs)"
export POLLEN_MODEL_STORE_ENDPOINT_RESOLVED="$(read_setting POLLEN_MODEL_STORE_ENDPOINT)"
export POLLEN_MODEL_STORE_BUCKET_RESOLVED="$(read_setting POLLEN_MODEL_STORE_BUCKET pollen-models)"
export POLLEN_MODEL_STORE_ACCESS_KEY_RESOLVED="$(read_setting POLLEN_MODEL_STORE_ACCESS_KEY)"
export POLLEN_MODEL_STORE_SECRET_KEY_RESOLVED="$(read_setting POLLEN_MODEL_STORE_SECRET_KEY)"
export POLLEN_MODEL_STORE_REGION_RESOLVED="$(read_setting POLLEN_MODEL_STORE_REGION us-east-1)"
export POLLEN_MODEL_STORE_ROOT_RESOLVED="$(read_setting POLLEN_MODEL_STORE_ROOT)"
model_store="$(dirname "$0")/../deploy/backup/model_store.py"
"${PYTHON:-python3}" "$model_store" verify "$src"

echo "restore.sh: restoring the database from $src/db.dump" >&2
pg_restore --clean --if-exists --no-owner --no-acl --single-transaction --exit-on-error \
    --dbname "$database_url" "$src/db.dump"

echo "restore.sh: restoring the model store" >&2
"${PYTHON:-python3}" "$model_store" restore "$src"
echo "restore.sh: done" >&2
