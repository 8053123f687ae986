#include "mta/tls.hpp"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cstdio>
#include <ctime>

#include <boost/asio/ssl/context.hpp>
#include <fmt/format.h>

namespace mta {
namespace ssl = boost::asio::ssl;
namespace {

std::string openssl_error() {
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  return buf;
}

}  // namespace

std::string make_self_signed(const std::filesystem::path& cert, const std::filesystem::path& key,
                             const std::string& hostname) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  if (!pkey) return "cannot generate a key: " + openssl_error();
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(std::time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(hostname.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  const auto san = "DNS:" + hostname;
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str())) {
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  std::string err;
  if (!X509_sign(x, pkey, EVP_sha256())) err = "cannot sign: " + openssl_error();
  if (err.empty()) {
    // The key is written readable by the owner only.
    const auto old = umask(077);
    FILE* kf = std::fopen(key.c_str(), "w");
    umask(old);
    FILE* cf = std::fopen(cert.c_str(), "w");
    if (!kf || !cf || !PEM_write_PrivateKey(kf, pkey, nullptr, nullptr, 0, nullptr, nullptr) || !PEM_write_X509(cf, x))
      err = fmt::format("cannot write {} / {}", cert.string(), key.string());
    if (kf) std::fclose(kf);
    if (cf) std::fclose(cf);
  }
  X509_free(x);
  EVP_PKEY_free(pkey);
  return err;
}

tls_config::tls_config(std::filesystem::path cert, std::filesystem::path key, std::filesystem::path data_dir,
                       std::string hostname)
    : cert_(std::move(cert)), key_(std::move(key)), data_dir_(std::move(data_dir)), hostname_(std::move(hostname)) {
  if (cert_.empty() && key_.empty()) {
    cert_ = data_dir_ / "tls-selfsigned.crt";
    key_ = data_dir_ / "tls-selfsigned.key";
  }
}

std::string tls_config::load() {
  if (!std::filesystem::exists(cert_) && cert_.filename() == "tls-selfsigned.crt") {
    if (auto err = make_self_signed(cert_, key_, hostname_); !err.empty()) return err;
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  // TLS 1.2 at least (RFC 8996 retired 1.0 and 1.1); server picks the cipher.
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx->native_handle(),
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                          "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert_.string(), ec);
  if (ec) return fmt::format("cannot load certificate {}: {}", cert_.string(), ec.message());
  ctx->use_private_key_file(key_.string(), ssl::context::pem, ec);
  if (ec) return fmt::format("cannot load key {}: {}", key_.string(), ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    return fmt::format("key {} does not match certificate {}", key_.string(), cert_.string());
  std::lock_guard lock(mu_);
  ctx_ = std::move(ctx);
  return {};
}

std::shared_ptr<ssl::context> tls_config::current() const {
  std::lock_guard lock(mu_);
  return ctx_;
}

}  // namespace mta
