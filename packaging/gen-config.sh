#!/bin/sh
# gen-config.sh EXAMPLE > config.yaml
# The packaged /etc/certstream/config.yaml: every key of the example
# (packaging/config.example.yaml, the built-in defaults) commented out, so
# the server runs on its documented defaults and follows the live CT logs,
# except the state file, which the package keeps in /var/lib/certstream
# (its StateDirectory) rather than in the working directory.
set -eu
cat <<'HEAD'
# /etc/certstream/config.yaml - certstream-server configuration (Debian package)
#
# Every key below is commented out and shows its built-in default; the server
# follows the public CT logs of ct_logs_url. Uncomment a key to change it,
# check with `certstream-server --config /etc/certstream/config.yaml
# --check-config`, then `systemctl reload certstream-server` (applies it
# without dropping clients; see docs/operations.md, "Reload").
# Only ct_log.state_file is set: the positions in the CT logs live in the
# service's state directory, /var/lib/certstream.
# Reference: /usr/share/doc/certstream-server/docs/configuration.md
#
HEAD
# Drop the example's own header (up to the first blank line), then comment
# every key line; keep `ct_log:` and its state_file active.
awk '
  !body { if ($0 == "") body = 1; next }
  /^ct_log:/ { print; next }
  /^  state_file:/ { print "  state_file: \"/var/lib/certstream/state.json\""; next }
  /^[ ]*#/ || /^$/ { print; next }
  { print "#" $0 }
' "$1"
