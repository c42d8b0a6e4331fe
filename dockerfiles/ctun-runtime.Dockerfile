# The tunnel runtime and nothing else: the pinned Node binary, the one bundled ctun
# script and the TAP addon. The other images copy /opt/ctun from it, so the large
# Node binary travels to the daemon once per build, not once per image.
# Filled in by ctun-build from its BuildPlan (tools/image).
FROM scratch
COPY opt/ctun/ /opt/ctun/
