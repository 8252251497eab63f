# The lb image: one static-ish binary on a slim Debian, for `lb manifests --image`.
# Not built by this project's CI (no container runtime there); see the README.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p lb-bin && strip target/release/lb

FROM debian:bookworm-slim
COPY --from=build /src/target/release/lb /usr/local/bin/lb
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/lb"]
