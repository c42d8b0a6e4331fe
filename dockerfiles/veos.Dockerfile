# {{image}}: the simulator from its tarball, its processes under supervisord.
# Filled in by ctun-build from its BuildPlan (tools/image).
# The steps are ordered by how often they change, so the simulator image and the
# one with the tunnel share every layer up to the tunnel runtime.
# The tarball and the wheels enter the `install` stage only: the final image copies
# what they installed, so their bytes are in no layer of it (a multi-stage build,
# which the classic builder runs too; BuildKit's RUN --mount it may not have).
{{runtimeStage}}
FROM {{baseImage}} AS base
{{aptSources}}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates iproute2 libstdc++6 \
 && rm -rf /var/lib/apt/lists/*
{{dotnet}}

FROM base AS install
{{pythonPackages}}
COPY veos/ /tmp/veos/
RUN mkdir -p /tmp/veos/unpacked \
 && tar -xzf /tmp/veos/simulator.tar.gz -C /tmp/veos/unpacked \
 && cd "/tmp/veos/unpacked/{{topDir}}" \
 && DS_ACCEPT_EULA={{acceptEula}} DS_INSTALL_PREFIX="{{installDir}}" {{installCommand}}

FROM base
COPY --from=install /opt/supervisor/ /opt/supervisor/
COPY --from=install {{installDir}}/ {{installDir}}/
{{ctunRuntime}}
COPY supervisor/ /etc/supervisor/
RUN chmod 0755 /etc/supervisor/entrypoint.sh \
 && ln -sf /opt/supervisor/bin/supervisord /opt/supervisor/bin/supervisorctl /usr/local/bin/
EXPOSE {{exposed}}
ENTRYPOINT ["/etc/supervisor/entrypoint.sh"]
