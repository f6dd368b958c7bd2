/* placeholder: implemented in progress */
typedef int lossd_placeholder_openapi;
