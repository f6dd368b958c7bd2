/* placeholder */ typedef int lossd_placeholder_handler;
