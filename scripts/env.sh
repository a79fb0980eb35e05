# Sourced by the scripts: config/dev.env for whatever the environment does not already set.
while IFS='=' read -r name value; do
  case "$name" in ''|\#*) continue ;; esac
  if [ -z "${!name+x}" ]; then export "$name=$value"; fi
done < "$(dirname "${BASH_SOURCE[0]}")/../config/dev.env"
