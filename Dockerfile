# The canary image: one static binary on distroless, no shell, as nonroot.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg BUILD_DATE=$(git log -1 --format=%cI) -t ghcr.io/aurum/canary:TAG .
#
# or `make image`. charts/dockerfile_test.go runs this file's build command
# and checks that the binary is static.

# The toolchain; go.mod's go line must not be newer.
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG BUILD_DATE=""
# The Makefile's build: nomsgpack leaves gin's unused MessagePack codec out,
# and no DWARF is compiled that -s -w would strip.
RUN CGO_ENABLED=0 go build -tags nomsgpack -trimpath -gcflags all=-dwarf=false -ldflags "-s -w -X main.version=${VERSION} -X main.buildDate=${BUILD_DATE}" -o /out/canary ./cmd/canary
# The data dir, created here as the final image has no shell to do it.
RUN mkdir -p /out/data
# The kubectl plugin (`kubectl canary`): a link to the binary, not a second
# copy. Copied as the directory holding it, a link stays a link.
RUN mkdir -p /out/plugin && ln -s canary /out/plugin/kubectl-canary

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=""
ARG BUILD_DATE=""
LABEL org.opencontainers.image.title="canary" \
      org.opencontainers.image.description="Aurum Canary: canary analysis webhooks for Argo Rollouts, Flagger and Alertmanager" \
      org.opencontainers.image.source="https://github.com/aurum/canary" \
      org.opencontainers.image.url="https://github.com/aurum/canary" \
      org.opencontainers.image.vendor="Aurum" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/canary /canary
COPY --from=build /out/plugin/ /
# The run store's directory (--data-dir), writable by nonroot only.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /var/lib/canary
# nonroot (65532), by number: Kubernetes can check runAsNonRoot against a
# numeric user only.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/canary"]
CMD ["serve", "--config", "/etc/canary/canary.yml"]
