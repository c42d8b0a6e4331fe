# {{image}}: the ctun {{role}}.
# Filled in by ctun-build from its BuildPlan (tools/image).
# Two stages: the base with iproute2 and iptables installed, from which
# tunnel-root.sh gathers what a tunnel end runs (/opt/ctun, sh, ip, iptables and
# ip6tables, their libraries and the runtime's, a dpkg status of the packages they come
# from); the image is that one layer on nothing else. Every step up to the
# `ctun --version` check is the same for the four ctun images, so they share those
# layers; only the last lines differ.
FROM {{runtimeImage}} AS runtime

FROM {{baseImage}} AS tools
{{aptSources}}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 iptables libstdc++6 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=runtime /opt/ctun/ /opt/ctun/
COPY tunnel-root.sh /tmp/tunnel-root.sh
RUN sh /tmp/tunnel-root.sh /rootfs

FROM scratch
COPY --from=tools /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin CTUN_ADDON=/opt/ctun/native/ctun_tap.node
# Proves the runtime works on this root before anything is tagged.
RUN ctun --version
EXPOSE {{port}}/udp {{port}}/tcp
ENTRYPOINT {{entrypoint}}
CMD []
