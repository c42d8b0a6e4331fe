# {{image}}: the simulator from {{tarball}}, its processes under supervisord.
# Filled in by ctun-build from its BuildPlan (tools/build).
# The steps are ordered by how often they change, so the simulator image and the
# one with the tunnel share every layer up to the tunnel runtime.
{{runtimeStage}}
FROM {{baseImage}}
{{aptSources}}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates iproute2 libstdc++6 \
 && rm -rf /var/lib/apt/lists/*
{{dotnet}}
{{pythonPackages}}
COPY veos/ /tmp/veos/
RUN mkdir -p /tmp/veos/unpacked \
 && tar -xzf /tmp/veos/{{tarball}} -C /tmp/veos/unpacked \
 && cd /tmp/veos/unpacked/{{topDir}} \
 && DS_ACCEPT_EULA={{acceptEula}} DS_INSTALL_PREFIX={{installDir}} {{installCommand}} \
 && rm -rf /tmp/veos
{{ctunRuntime}}
COPY supervisor/ /etc/supervisor/
RUN chmod 0755 /etc/supervisor/entrypoint.sh \
 && ln -sf /opt/supervisor/bin/supervisord /opt/supervisor/bin/supervisorctl /usr/local/bin/
EXPOSE {{exposed}}
ENTRYPOINT ["/etc/supervisor/entrypoint.sh"]
