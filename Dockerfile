# syntax=docker/dockerfile:1
# Two images from one build: the proxy (default target) and the sample
# monolith (Nginx + PHP-FPM under the same Go launcher the tests use).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/strangler ./cmd/strangler \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/monolith ./cmd/monolith

# The monolith needs Debian's nginx and php8.2-fpm, exactly as on a developer machine.
FROM debian:bookworm-slim AS monolith
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light php8.2-fpm php8.2-cli ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /out/monolith /usr/local/bin/monolith
COPY go.mod ./
COPY examples/monolith ./examples/monolith
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/monolith", "-listen", "0.0.0.0:8081"]

FROM gcr.io/distroless/static-debian12:nonroot AS strangler
WORKDIR /app
COPY --from=build /out/strangler /usr/local/bin/strangler
COPY config.yaml ./config.yaml
COPY examples/monolith/data/campaigns.json ./examples/monolith/data/campaigns.json
# The spool must survive restarts: mount a volume here.
VOLUME ["/app/var"]
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/strangler", "run", "-config", "/app/config.yaml"]
