// Password hashes as Dovecot's passwd-file keeps them: "{SHA512-CRYPT}$6$salt$…"
// (a bare crypt(3) string is accepted too), checked with libcrypt.
#pragma once

#include <string>

namespace mta {

bool verify_password(const std::string& stored, const std::string& password);
// A new "{SHA512-CRYPT}$6$<random salt>$…" hash.
std::string hash_password(const std::string& password);

}  // namespace mta
