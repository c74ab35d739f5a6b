# Builds the expressway binary; used by docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# `dist`: the release profile with whole-program optimisation (Cargo.toml).
RUN cargo build --profile dist --locked --bin expressway

FROM debian:bookworm-slim
COPY --from=build /src/target/dist/expressway /usr/local/bin/expressway
ENTRYPOINT ["expressway"]
