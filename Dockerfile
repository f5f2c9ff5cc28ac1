# audit-stream: one static binary on a minimal, non-root base.
#   docker build -t audit-stream .
#   docker run -p 8093:8093 -v audit-data:/data audit-stream
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go (the SQLite driver included): CGO_ENABLED=0 gives a static binary.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/audit-stream ./cmd/audit-stream \
 && mkdir -p /out/data

# distroless/static: CA certificates, tzdata and a nonroot user (65532), no
# shell, no package manager. FROM scratch works too, given /etc/passwd and
# CA certificates.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/audit-stream /usr/local/bin/audit-stream
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV AUDIT_STREAM_DATA=/data \
    AUDIT_STREAM_ADDR=0.0.0.0:8093 \
    AUDIT_STREAM_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8093
# No curl in the image: the binary probes itself. /readyz: the store answers
# and /data takes a write.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/audit-stream", "health", "--ready"]
# SIGTERM drains: appends in flight are answered, streams end cleanly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/audit-stream"]
CMD ["serve"]
