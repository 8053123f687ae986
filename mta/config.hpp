// Tern's configuration: one TOML file, or the built-in development default
// (identical to etc/tern.toml, which a test checks). Loading validates
// everything up front so that a bad file stops start-up with the file, the
// line and what is wrong, instead of failing later at run time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mta {

struct endpoint {
  std::string host;  // numeric address: "127.0.0.1", "::"
  std::uint16_t port = 0;
  std::string str() const;  // "127.0.0.1:2525", "[::1]:2525"
};

struct limits_config {
  std::uint64_t max_message_size = 36700160;
  std::uint64_t max_recipients = 100;
  std::uint64_t max_connections = 2000;
  std::uint64_t max_connections_per_ip = 50;
  std::uint64_t max_errors = 20;
  std::chrono::seconds command_timeout{300};  // RFC 5321 §4.5.3.2.7: at least 5 minutes
  std::chrono::seconds data_timeout{600};     // RFC 5321 §4.5.3.2.6: 10 minutes for the end of data
  std::uint64_t max_auth_failures = 10;       // per client address, then 421 (brute force)
  std::chrono::seconds auth_failure_delay{1}; // the first wait; doubles with each failure
};

struct tls_files {
  std::filesystem::path cert_file;  // both empty: a self-signed certificate in data_dir
  std::filesystem::path key_file;
};

struct local_config {
  std::vector<std::string> domains{"example.test"};
  std::filesystem::path mailbox_root = "./var/mail";
  std::filesystem::path users_file = "etc/users";
  std::map<std::string, std::vector<std::string>> aliases{{"postmaster@example.test", {"alice@example.test"}}};
  std::map<std::string, std::string> catch_all;  // domain -> address for unknown users
};

struct delivery_config {
  // false: accept and queue, deliver nothing (maintenance, or a receive-only
  // spool), like Postfix's defer_transports for every transport.
  bool enabled = true;
  std::chrono::seconds retry_initial{5 * 60};
  std::chrono::seconds retry_max{4 * 3600};
  std::chrono::seconds max_queue_lifetime{5 * 86400};
  unsigned max_concurrency = 8;
  std::chrono::seconds history{7 * 86400};  // attempts of finished messages stay visible this long
  std::chrono::seconds delay_warning{0};    // 0: no delay notices
  std::uint16_t smtp_port = 25;              // where other mail servers listen
  std::map<std::string, std::string> transports;  // domain or "*" -> "[host]:port" (smart host)
  std::vector<std::string> dns_servers;      // "127.0.0.1:5353"; empty: /etc/resolv.conf
  std::string tls = "may";                   // "none" | "may" | "encrypt" for outbound SMTP
  unsigned per_destination_concurrency = 20; // connections at once to one destination
  // The local address of outbound connections, per family (Postfix's
  // smtp_bind_address and smtp_bind_address6); empty: the kernel's choice.
  // A host with several addresses sends from the one its SPF record and PTR
  // name belong to.
  std::string source_address;   // IPv4
  std::string source_address6;  // IPv6
};

struct config {
  std::string source = "built-in development default";
  std::filesystem::path file;  // what it was read from; empty: the built-in default
  std::string hostname = "mx.example.test";
  std::filesystem::path data_dir = "./var";
  unsigned threads = 0;  // 0: one per core
  std::vector<endpoint> smtp_listen{{"127.0.0.1", 2525}};
  std::vector<endpoint> submission_listen{{"127.0.0.1", 2587}};
  std::vector<endpoint> submissions_listen;
  bool submission_allow_any_sender = false;  // else an authenticated user sends only as self or an alias
  tls_files tls;
  std::vector<endpoint> http_listen{{"127.0.0.1", 8025}};  // admin API and console; [] = off
  std::filesystem::path http_token_file;                    // bearer token for non-loopback clients
  // Loopback clients need the token too: on a host with other local users,
  // loopback is not only the operator.
  bool http_loopback_needs_token = false;
  limits_config limits;
  local_config local;
  delivery_config delivery;
  std::vector<std::string> relay_networks{"127.0.0.0/8"};

  std::filesystem::path queue_path() const { return data_dir / "queue.db"; }
};

struct config_error {
  std::string file;
  std::size_t line = 0;  // 0 when the error is not tied to a line
  std::string what;
  std::string str() const;  // "file:line: what"
};

std::variant<config, config_error> load_config(const std::filesystem::path& path);
// The same for text in memory; `name` stands for the file in error messages.
std::variant<config, config_error> load_config_text(std::string_view text, const std::string& name);

// Parses "5m", "30s", "2h", "5d".
std::optional<std::chrono::seconds> parse_duration(std::string_view s);
std::optional<endpoint> parse_endpoint(std::string_view s);

}  // namespace mta
