// The server's TLS: a context with TLS 1.2 at least and modern ciphers, from
// the configured certificate, or from a self-signed one generated for our
// hostname into data_dir at first start (and reused), so that the development
// default encrypts with no set-up. Reloadable (SIGHUP) without dropping
// connections: sessions take the current context when they start TLS.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace mta {

class tls_config {
 public:
  // Empty cert/key: use (creating if needed) data_dir/tls-selfsigned.{crt,key}.
  tls_config(std::filesystem::path cert, std::filesystem::path key, std::filesystem::path data_dir,
             std::string hostname);
  // Loads (or reloads) the certificate; returns an error text, empty on success.
  std::string load();
  std::shared_ptr<boost::asio::ssl::context> current() const;
  const std::filesystem::path& cert_file() const { return cert_; }

 private:
  std::filesystem::path cert_, key_, data_dir_;
  std::string hostname_;
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;
};

// Writes a self-signed certificate and key (EC P-256, 10 years) for hostname.
std::string make_self_signed(const std::filesystem::path& cert, const std::filesystem::path& key,
                             const std::string& hostname);

}  // namespace mta
