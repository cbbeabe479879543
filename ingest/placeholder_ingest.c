/* placeholder until implemented */
typedef int cs_placeholder_placeholder_ingest;
