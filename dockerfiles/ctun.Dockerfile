# {{image}}: the ctun {{role}}.
# Filled in by ctun-build from its BuildPlan (tools/image).
# Every step up to the `ctun --version` check is the same for the four ctun images,
# so they share those layers; only the last lines differ.
FROM {{runtimeImage}} AS runtime

FROM {{baseImage}}
{{aptSources}}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 iptables libstdc++6 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=runtime /opt/ctun/ /opt/ctun/
ENV CTUN_ADDON=/opt/ctun/native/ctun_tap.node
# Proves the runtime works on this base before anything is tagged.
RUN ln -sf /opt/ctun/bin/ctun /usr/local/bin/ctun && ctun --version
EXPOSE {{port}}/udp {{port}}/tcp
ENTRYPOINT {{entrypoint}}
CMD []
