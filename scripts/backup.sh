#!/usr/bin/env bash
# Back up the hub: the database (pg_dump, custom format) and the model-store bucket.
#
#   scripts/backup.sh DEST_DIR         -> DEST_DIR/pollen-<UTC time>/{db.dump,model-store/,manifest.json}
#
# Reads the hub's own settings from the environment (each also as NAME_FILE, as in the
# containers): DATABASE_URL, and POLLEN_MODEL_STORE_{KIND,ENDPOINT,BUCKET,ACCESS_KEY,
# SECRET_KEY,REGION}. With POLLEN_MODEL_STORE_KIND=fs the folder POLLEN_MODEL_STORE_ROOT
# is copied instead. Site storage is never backed up here: it belongs to each hospital.
# Needs pg_dump (same major version as the server or newer) and python3 with boto3
# (the hub image has both; so does .venv). Exit status is non-zero on any failure, and a
# failed backup leaves no folder that looks complete (manifest.json is written last).
set -euo pipefail

usage() { echo "usage: $0 DEST_DIR" >&2; exit 2; }
[[ $# -eq 1 ]] || usage

read_setting() {  # read_setting NAME [DEFAULT]: $NAME, or the contents of $NAME_FILE
    local name="$1" file_var="${1}_FILE"
    if [[ -n "${!file_var:-}" ]]; then
        tr -d '\r\n' <"${!file_var}"
    else
        printf '%s' "${!name:-${2:-}}"
    fi
}

database_url="$(read_setting DATABASE_URL)"
[[ "$database_url" == postgres://* || "$database_url" == postgresql://* ]] || {
    echo "backup.sh: DATABASE_URL must be a postgres:// URL" >&2; exit 2; }

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
dest="$1/pollen-$stamp"
mkdir -p "$dest"
chmod 700 "$dest"
echo "backup.sh: writing $dest" >&2

# 1. The database: one consistent snapshot, restorable with pg_restore (any table order).
pg_dump --format=custom --compress=6 --no-owner --no-acl --file "$dest/db.dump" "$database_url"

# 2. The model store (published weights and model cards), with a checksum per object.
export POLLEN_BACKUP_DEST="$dest"
export POLLEN_MODEL_STORE_KIND_RESOLVED="$(read_setting POLLEN_MODEL_STORE_KIND fs)"
export POLLEN_MODEL_STORE_ENDPOINT_RESOLVED="$(read_setting POLLEN_MODEL_STORE_ENDPOINT)"
export POLLEN_MODEL_STORE_BUCKET_RESOLVED="$(read_setting POLLEN_MODEL_STORE_BUCKET pollen-models)"
export POLLEN_MODEL_STORE_ACCESS_KEY_RESOLVED="$(read_setting POLLEN_MODEL_STORE_ACCESS_KEY)"
export POLLEN_MODEL_STORE_SECRET_KEY_RESOLVED="$(read_setting POLLEN_MODEL_STORE_SECRET_KEY)"
export POLLEN_MODEL_STORE_REGION_RESOLVED="$(read_setting POLLEN_MODEL_STORE_REGION us-east-1)"
export POLLEN_MODEL_STORE_ROOT_RESOLVED="$(read_setting POLLEN_MODEL_STORE_ROOT)"
"${PYTHON:-python3}" "$(dirname "$0")/../deploy/backup/model_store.py" backup "$dest"

echo "$dest"
