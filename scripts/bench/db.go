package main

import "database/sql"

type sqlDB = sql.DB
