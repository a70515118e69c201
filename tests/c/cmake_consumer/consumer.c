/* Loads a mesh and prints its triangle count: proof that the package's
 * include path and library work for C. */
#include "hisdf.h"
#include <stdio.h>

int main(int argc, char **argv) {
    HisdfMesh *mesh = NULL;
    HisdfMeshInfo info;
    HisdfError *err = NULL;
    if (argc != 2) return 2;
    if (hisdf_mesh_load(argv[1], &mesh, &err) != HISDF_STATUS_OK ||
        hisdf_mesh_info(mesh, &info, &err) != HISDF_STATUS_OK) {
        fprintf(stderr, "%s\n", hisdf_error_message(err));
        hisdf_error_free(err);
        hisdf_mesh_free(mesh);
        return 1;
    }
    printf("triangles %lu\n", (unsigned long)info.triangle_count);
    hisdf_mesh_free(mesh);
    return 0;
}
