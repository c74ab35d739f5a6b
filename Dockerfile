# Builds the expressway binary; used by docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin expressway

FROM debian:bookworm-slim
COPY --from=build /src/target/release/expressway /usr/local/bin/expressway
ENTRYPOINT ["expressway"]
