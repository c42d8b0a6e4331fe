// Sealing and opening datagrams with a kept OpenSSL context (aead.cc).
#pragma once
#include <napi.h>

namespace ctun {
void InitAead(Napi::Env env, Napi::Object exports);
}
