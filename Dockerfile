# certstream-server container image (docs/operations.md, "Container").
# Stage 1 builds the Debian package exactly as `make deb` does; stage 2
# installs it on a slim Debian 12 and runs the server as the package's
# unprivileged certstream user. Build: docker build -t certstream-server .
FROM debian:bookworm AS build
WORKDIR /src
COPY . /src
# nocheck: the test suite runs in `make check` (CI), not in the image build.
ENV DEB_BUILD_OPTIONS=nocheck
RUN sh packaging/install-deps.sh deb
RUN sh packaging/build-deb.sh /dist

FROM debian:bookworm-slim
COPY --from=build /dist/certstream-server_*.deb /tmp/debs/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates /tmp/debs/certstream-server_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/debs
# The configuration is /etc/certstream/config.yaml (mount your own over it)
# and every key can also be set with a CERTSTREAM_* variable. Positions in
# the CT logs are kept in the volume.
VOLUME /var/lib/certstream
WORKDIR /var/lib/certstream
USER certstream
EXPOSE 8080
STOPSIGNAL SIGTERM
# bash's /dev/tcp: no HTTP client needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CERTSTREAM_PORT:-8080} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 5 line <&3 && [[ $line == 'HTTP/1.1 200'* ]]"]
ENTRYPOINT ["/usr/bin/certstream-server"]
CMD ["--config", "/etc/certstream/config.yaml"]
