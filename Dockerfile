# renew-certificates in a container: a static binary on a distroless base
# (no shell, no package manager), running as a non-root user.
#
#   docker build \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t REGISTRY/renew-certificates:VERSION .      (from the repository root)
#
# VERSION and REVISION are what `renew-certificates -version` prints: the
# build context has no .git (.dockerignore), so Go cannot stamp them
# itself. Without them it prints "(devel)", and the build says so.
#
# This image has not been built by this repository's CI, which has no
# container builder; the binary it builds is the one CI tests (same
# package, CGO_ENABLED=0). See README.md, "Containers and Kubernetes".

FROM golang:1.26 AS build
# The command is a module of its own (cmd/renew-certificates) that replaces
# the library with the checkout beside it (../..); it is built as that
# module alone, without the repository's go.work.
ENV GOWORK=off
WORKDIR /src
COPY go.mod go.sum ./
COPY cmd/renew-certificates/go.mod cmd/renew-certificates/go.sum ./cmd/renew-certificates/
RUN cd cmd/renew-certificates && go mod download
COPY . .
# Static: no libc needed at run time (os/user and DNS use the Go code).
ARG VERSION=""
ARG REVISION=""
RUN if [ -z "$VERSION" ]; then echo "warning: no --build-arg VERSION: -version will print (devel)" >&2; fi; \
    cd cmd/renew-certificates && CGO_ENABLED=0 go build -trimpath \
      -ldflags="-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/renew-certificates .

# CA certificates and tzdata included; user nonroot is 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/renew-certificates /renew-certificates
USER 65532:65532
# serve.listen must be ":9750" (not the loopback default) for the port to
# be reachable from outside the container.
EXPOSE 9750
ENTRYPOINT ["/renew-certificates"]
CMD ["-serve", "-config", "/etc/renewkit/config.toml", "-log-format", "json"]
