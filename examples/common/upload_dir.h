/* upload_dir — what a directory of uploads already holds, for the example
 * upload servers (demo_server's /ws/file-transfer, ft_server): their files
 * count toward the quotas, and numbering goes on above the highest number,
 * so a restart never collides with an earlier run's files. */
#ifndef WSMSG_EXAMPLE_UPLOAD_DIR_H
#define WSMSG_EXAMPLE_UPLOAD_DIR_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* Add the regular files of `dir` whose name `number_of` takes (it returns
 * 1 and sets *n to the file's number) to *nfiles and their bytes to
 * *total, and raise *max_no to the highest number.  Returns 0, or -1 if
 * `dir` cannot be read. */
static inline int
upload_dir_scan(const char *dir,
                int (*number_of)(const char *name, unsigned long *n),
                unsigned long *nfiles, uint64_t *total, unsigned long *max_no) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    unsigned long n;
    if (!number_of(e->d_name, &n))
      continue;
    char path[4400];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    ++*nfiles;
    *total += (uint64_t)st.st_size;
    if (n > *max_no)
      *max_no = n;
  }
  closedir(d);
  return 0;
}

#endif
