#include "mta/passwords.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace mta {

bool verify_password(const std::string& stored, const std::string& password) {
  std::string hash = stored;
  if (hash.rfind("{SHA512-CRYPT}", 0) == 0) hash = hash.substr(14);
  else if (hash.rfind("{CRYPT}", 0) == 0) hash = hash.substr(7);
  // Only modern schemes: a DES or MD5 crypt is as good as no password.
  if (hash.rfind("$6$", 0) != 0 && hash.rfind("$y$", 0) != 0) return false;
  crypt_data data{};
  const char* out = crypt_r(password.c_str(), hash.c_str(), &data);
  if (!out || std::strlen(out) != hash.size()) return false;
  return CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;  // constant time
}

std::string hash_password(const std::string& password) {
  static constexpr char salt_chars[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("no randomness for a salt");
  std::string setting = "$6$";
  for (unsigned char b : raw) setting += salt_chars[b % 64];
  crypt_data data{};
  const char* out = crypt_r(password.c_str(), setting.c_str(), &data);
  if (!out || out[0] == '*') throw std::runtime_error("crypt failed");
  return std::string("{SHA512-CRYPT}") + out;
}

}  // namespace mta
