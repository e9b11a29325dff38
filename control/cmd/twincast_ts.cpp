// twincast-ts — analyze and remux transport-stream files.
#include <cstdio>

int main(int, char**) {
  std::fprintf(stderr, "usage: twincast-ts analyze|remux ...\n");
  return 2;
}
