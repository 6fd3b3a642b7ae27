#include "core/checksum.hpp"

#include <openssl/evp.h>

#include <array>
#include <memory>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep {

namespace {

// SHA-256 from OpenSSL's default provider, fetched once: under OpenSSL 3, EVP_sha256() makes every
// EVP_DigestInit_ex() look the algorithm up again (about 2 k instructions per file). Kept for the
// process's life.
const EVP_MD* sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace

std::string migration_checksum(std::string_view bytes) {
  struct FreeContext {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, FreeContext> ctx(EVP_MD_CTX_new());
  if (!ctx || !sha256() || EVP_DigestInit_ex(ctx.get(), sha256(), nullptr) != 1) {
    throw Error(ErrorCode::kInternal, "OpenSSL cannot compute SHA-256");
  }
  // Feed the text in runs between the '\r' of each CRLF, which is left out.
  bytes.remove_prefix(bom_length(bytes));
  std::size_t start = 0;
  for (std::size_t cr = bytes.find("\r\n"); cr != std::string_view::npos;
       cr = bytes.find("\r\n", cr + 2)) {
    EVP_DigestUpdate(ctx.get(), bytes.data() + start, cr - start);
    start = cr + 1;  // the '\n' starts the next run
  }
  EVP_DigestUpdate(ctx.get(), bytes.data() + start, bytes.size() - start);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &length) != 1) {
    throw Error(ErrorCode::kInternal, "OpenSSL cannot compute SHA-256");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

}  // namespace dbstep
