#!/bin/sh
# Entry point of the simulator image: supervisord in the foreground. Written by
# ctun-build. CTUN_START=yes also starts the tunnel server (images built with
# --installCtun yes); CTUN_ARGS adds options to `ctun server`.
set -eu
case "${CTUN_START:-no}" in
  yes|true|1) CTUN_AUTOSTART=true ;;
  *) CTUN_AUTOSTART=false ;;
esac
export CTUN_AUTOSTART
export CTUN_ARGS="${CTUN_ARGS:-}"
exec /opt/supervisor/bin/supervisord -n -c /etc/supervisor/supervisord.conf "$@"
