{
  "targets": [
    {
      "target_name": "ctun_tap",
      "sources": ["tap.cc", "aead.cc", "offload.cc", "datapath.cc", "fastpath.cc", "server_fastpath.cc", "stream_link.cc", "sealer.cc", "busy_poll.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
