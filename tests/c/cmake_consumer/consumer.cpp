// As consumer.c, through the C++ wrapper.
#include "hisdf.hpp"
#include <cstdio>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    try {
        auto mesh = hisdf::Mesh::load(argv[1]);
        std::printf("triangles %lu\n", static_cast<unsigned long>(mesh.triangle_count()));
    } catch (const hisdf::Error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
