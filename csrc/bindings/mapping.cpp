// pybind11: read-only file mappings for the index's arrays. np.memmap (Python's mmap) keeps a duplicate
// of the file's descriptor open for as long as the mapping lives: about seven per index segment, so an
// index grown by many adds ran out of descriptors (EMFILE at ~140 segments under the usual 1,024 limit).
// A mapping does not need its descriptor once made, so this one closes it at once.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common.hpp"

namespace edgecolbert::bind {
namespace {

struct Mapping {
  void* addr;
  std::size_t bytes;
};

// OSError(errno, strerror, path), as open() would raise it.
[[noreturn]] void os_error(int err, const std::string& path) {
  errno = err;
  PyErr_SetFromErrnoWithFilename(PyExc_OSError, path.c_str());
  throw py::error_already_set();
}

}  // namespace

void register_mapping(py::module_& m) {
  m.def(
      "map_readonly",
      [](const std::string& path, int64_t nbytes) -> py::array {
        if (nbytes <= 0) value_error(cat("map_readonly: nbytes must be > 0, got ", nbytes));
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) os_error(errno, path);
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
          const int err = errno;
          ::close(fd);
          os_error(err, path);
        }
        if (st.st_size < nbytes) {
          ::close(fd);
          value_error(cat("map_readonly: ", path, " holds ", st.st_size, " bytes, ", nbytes, " were asked"));
        }
        void* addr = ::mmap(nullptr, static_cast<std::size_t>(nbytes), PROT_READ, MAP_SHARED, fd, 0);
        const int err = errno;
        ::close(fd);  // the mapping keeps the file; the descriptor is not needed
        if (addr == MAP_FAILED) os_error(err, path);
        auto* mp = new Mapping{addr, static_cast<std::size_t>(nbytes)};
        py::capsule owner(mp, [](void* p) {
          auto* mm = static_cast<Mapping*>(p);
          ::munmap(mm->addr, mm->bytes);
          delete mm;
        });
        // Read-only, as the pages are: a write would fault, so numpy refuses it instead.
        py::array out(py::dtype("uint8"), {nbytes}, {int64_t{1}}, static_cast<const uint8_t*>(addr), owner);
        py::detail::array_proxy(out.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        return out;
      },
      py::arg("path"), py::arg("nbytes"),
      "A read-only uint8 array of the first nbytes of the file at path, memory-mapped; no file descriptor "
      "stays open (the mapping is released with the array).");
}

}  // namespace edgecolbert::bind
